using RetriBooru.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using RetriBooru.Runtime;
using RetriBooru.Settings;
using System.Text.Json.Serialization;

namespace RetriBooru.Diffusion;

/// <summary>
/// Reference-model training (the spec's <c>train</c> section, the <c>train</c> verb's flags): the paper's choices
/// (masked loss, prompt and reference dropout) and the optimisation schedule. Each field is defined here once, with
/// its JSON name, default, range and help; the spec loader and the CLI read them from here.
/// </summary>
public sealed record ReferenceTrainingOptions
{
    [JsonPropertyName("steps"), Setting("Optimisation steps.", Min = 0, Max = 10_000_000)]
    public int Steps { get; init; } = 1000;

    [JsonPropertyName("batch_size"), Setting("Examples per step; a batch larger than the dataset is clamped to the dataset size (with a note).", Min = 1, Max = 1_000_000)]
    public int BatchSize { get; init; } = 16;

    [JsonPropertyName("learning_rate"), Setting("Peak learning rate of the new branch (AdamW).", Min = 1e-8, Max = 1)]
    public double LearningRate { get; init; } = 5e-4;

    [JsonPropertyName("warmup_steps"), Setting("Linear warm-up steps (default: min(50, steps / 10)).", Min = 0, Max = 10_000_000)]
    public int? WarmupSteps { get; init; }

    [JsonPropertyName("learning_rate_schedule"), Setting("After warm-up: constant or cosine (decays to 0 at the last step).")]
    public LearningRateSchedule LearningRateSchedule { get; init; } = TrainingRecipe.LearningRateSchedule;

    [JsonPropertyName("checkpoint_every"), Setting("Write a resumable checkpoint every N steps (default: max(50, steps / 10)).", Min = 1, Max = 10_000_000)]
    public int? CheckpointEvery { get; init; }

    [JsonPropertyName("grad_clip"), Setting("Global gradient-norm clip (0 = off).", Min = 0, Max = 1e6)]
    public double GradClip { get; init; } = 1.0;

    [JsonPropertyName("prompt_dropout"), Setting("Probability that a sample's prompt is replaced by the empty prompt.", Min = 0, Max = 1)]
    public double PromptDropout { get; init; } = 0.1;

    [JsonPropertyName("reference_dropout"), Setting("Probability that all of a sample's references are dropped (so reference guidance has an unconditional branch).", Min = 0, Max = 1)]
    public double ReferenceDropout { get; init; } = 0.1;

    /// <remarks>
    /// Left out of the JSON when 0 so that the stage keys of runs made before it existed stay the same. Why it exists:
    /// the branch copied the clothes crop's dominant colour and little of the face crops (hair colour 0.38 on unseen
    /// characters where the probe reads real pictures at 0.97); with every crop always present, a training character's
    /// hair can be recalled from its outfit instead of read from its face.
    /// </remarks>
    [JsonPropertyName("reference_dropout_each"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault),
     Setting("Probability that each reference is dropped on its own, after the whole-sample dropout, so the branch must read whichever crops remain (0 = off).", Min = 0, Max = 0.95)]
    public double ReferenceDropoutEach { get; init; }

    [JsonPropertyName("masked_loss"), Setting("Only the figure (the mask, resized to model resolution) counts in the loss; false = plain loss over the whole image.")]
    public bool MaskedLoss { get; init; } = true;

    /// <remarks>
    /// A weight above 0 (our specs: 0.5) keeps the trainable decoder drawing backgrounds. Measured on the tiny config:
    /// with 0, 1000 steps of decoder fine-tuning turned a base model's clean "simple_background" into coloured noise for
    /// RetriNet and the text-only baseline alike.
    /// </remarks>
    [JsonPropertyName("background_weight"), Setting("Loss weight of the background under the masked loss (0 = only the figure counts, as the paper).", Min = 0, Max = 1)]
    public double BackgroundWeight { get; init; }

    /// <remarks>Measured on the tiny config: 0.2 with a branch rate of 1e-3 did not raise attribute agreement.</remarks>
    [JsonPropertyName("decoder_lr_scale"), Setting("Learning-rate multiplier of the base U-Net's decoder (RetriNet and text-only train it; the new branch keeps the full rate).", Min = 0, Max = 100)]
    public double DecoderLearningRateScale { get; init; } = 1.0;

    [JsonPropertyName("prompt_view"), Setting("full (the target's whole tag prompt, as the paper) or context (character, hair, eye and clothing tags removed: identity only from the references).")]
    public PromptView PromptView { get; init; } = PromptView.Full;

    [JsonPropertyName("min_snr_gamma"), Setting("Min-SNR-gamma loss weighting per sample; 0 or null = off (plain MSE on the prediction target).", Min = 0, Max = 1e6)]
    public double? MinSnrGamma { get; init; } = TrainingRecipe.MinSnrGamma;

    /// <remarks>Left out of the JSON when 0 so that the stage keys of runs made before it existed stay the same.</remarks>
    [JsonPropertyName("reference_augmentation"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault),
     Setting("Colour-keeping augmentation of the reference crops in training: a mirror image half of the time and a random crop keeping 1 - a to all of each side, resized back (0 = off).", Min = 0, Max = Diffusion.ReferenceAugmentation.MaxStrength)]
    public double ReferenceAugmentation { get; init; }

    /// <remarks>
    /// Left out of the JSON when 0 so that the stage keys of runs made before it existed stay the same. Why it exists: on
    /// the shipped base RetriNet recognised its 12 training characters (seen 0.461) and copied nothing of unseen ones
    /// (0.156, text-only's level); a recoloured training character is a character no one has seen.
    /// </remarks>
    [JsonPropertyName("colour_shift"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault),
     Setting("Probability that a training example's figure and all its reference crops are hue-rotated by one shared random angle, so colours must be copied from the references rather than recalled from a known face (0 = off; text-only, which has no references, ignores it).", Min = 0, Max = 1)]
    public double ColourShift { get; init; }

    /// <remarks>Left out of the JSON when false so that the stage keys of runs made before it existed stay the same.</remarks>
    [JsonPropertyName("reference_positions"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault),
     Setting("RetriNet only: learned position embeddings on the reference attention's queries and keys, so a part of the target can be matched with where that part sits in a reference crop (other models ignore it).")]
    public bool ReferencePositions { get; init; }

    [JsonPropertyName("ip_scale"), Setting("Scale of the IP-Adapter-style baseline's reference attention (other models ignore it).", Min = 0, Max = 100)]
    public double IpAdapterScale { get; init; } = 1.0;

    /// <summary>The min-SNR gamma in effect (null = off: 0 and null both mean off).</summary>
    [JsonIgnore] public double? EffectiveMinSnrGamma => TrainingRecipe.EffectiveMinSnrGamma(MinSnrGamma);

    /// <summary>The RetriNet architecture these options ask for (the init seed is set where the model is made).</summary>
    public RetriNetOptions RetriNet() => new() { PositionEmbeddings = ReferencePositions };

    /// <summary>The trainer's options for this schedule: the one place warm-up and checkpoint defaults are resolved.</summary>
    public TrainerOptions Trainer(long seed, int? stopAfter = null) => new()
    {
        Steps = Steps, BatchSize = BatchSize, LearningRate = LearningRate,
        WarmupSteps = WarmupSteps ?? Math.Min(50, Steps / 10), LearningRateSchedule = LearningRateSchedule, GradClip = GradClip,
        Seed = seed, CheckpointEvery = CheckpointEvery ?? Math.Max(50, Steps / 10), StopAfter = stopAfter,
    };

    public void Validate() => SettingFields.ThrowIfOutOfRange(this);

    /// <summary>Every problem, each naming its field by <paramref name="label"/> (a spec path or a CLI flag).</summary>
    public IReadOnlyList<string> Problems(Func<SettingField, string> label) => SettingFields.RangeProblems(this, label);
}

/// <summary>Batches references (padding to the largest count with absent slots) and caches concept-word encodings.</summary>
public sealed class ReferenceBatcher(DiffusionModel model) : IDisposable
{
    readonly Dictionary<Concept, Tensor> _concepts = [];

    /// <summary>The frozen text encoder's encoding of a concept word, [T, D], computed once.</summary>
    public Tensor Concept(Concept concept)
    {
        if (_concepts.TryGetValue(concept, out var cached)) return cached;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope(); // keeps the row view and its detached copy alive until clone returns
        var encoded = model.EncodePrompts([concept.Name()]);
        var value = encoded[0].detach().clone().DetachFromDisposeScope();
        _concepts[concept] = value;
        return value;
    }

    /// <summary>Stacks per-sample references into a <see cref="ReferenceBatch"/> in model space. Tensors land in the caller's scope.</summary>
    public ReferenceBatch Build(IReadOnlyList<IReadOnlyList<ReferenceCrop>> perSample)
    {
        int b = perSample.Count;
        int r = Math.Max(1, perSample.Max(s => s.Count));
        var device = model.Device;
        var imageShape = perSample.SelectMany(s => s).Select(c => c.Image.shape).FirstOrDefault()
                         ?? [3, model.Config.ImageSize, model.Config.ImageSize];
        var conceptShape = Concept(Settings.Concept.Face).shape;
        var images = new List<Tensor>();
        var concepts = new List<Tensor>();
        var present = new bool[b * r];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < r; j++)
            {
                if (j < perSample[i].Count)
                {
                    images.Add(perSample[i][j].Image);
                    concepts.Add(Concept(perSample[i][j].Concept));
                    present[i * r + j] = true;
                }
                else
                {
                    images.Add(zeros(imageShape));
                    concepts.Add(zeros(conceptShape));
                }
            }
        Tensor inModelSpace;
        using (no_grad()) inModelSpace = model.ToModelSpace(stack(images).to(device));
        return new ReferenceBatch(
            inModelSpace.reshape([b, r, .. inModelSpace.shape[1..]]),
            stack(concepts).to(device).reshape([b, r, .. conceptShape]),
            tensor(present, [b, r]).to(device));
    }

    public void Dispose()
    {
        foreach (var t in _concepts.Values) t.Dispose();
        _concepts.Clear();
    }
}

/// <summary>
/// Trains a reference-conditioned model (RetriNet or a baseline) with the shared trainer: masked loss,
/// prompt dropout and reference dropout; the text encoder and VAE stay frozen.
/// </summary>
public sealed class ReferenceTrainingTask : ITrainingTask, IDisposable
{
    readonly DiffusionModel model;
    readonly IReferenceConditionedModel branch;
    readonly ReferenceDataset data;
    readonly NoiseSchedule schedule;
    readonly ReferenceBatcher batcher;

    public ReferenceTrainingOptions Options { get; }

    public ReferenceTrainingTask(DiffusionModel model, IReferenceConditionedModel branch, ReferenceDataset data, ReferenceTrainingOptions? options = null)
    {
        Options = options ?? new ReferenceTrainingOptions();
        Options.Validate();
        if (data.ImageSize != model.Config.ImageSize)
            throw new ArgumentException($"dataset images are {data.ImageSize} px but model '{model.Config.Name}' expects {model.Config.ImageSize} px");
        if (data.Count == 0) throw new ArgumentException($"{data.Folder}: no usable training examples");
        this.model = model;
        this.branch = branch;
        this.data = data;
        schedule = new NoiseSchedule(model.Config.Schedule);
        batcher = new ReferenceBatcher(model);
        foreach (var p in model.TextEncoder.parameters()) p.requires_grad = false;
        if (model.Vae is not null) foreach (var p in model.Vae.parameters()) p.requires_grad = false;
        var trainable = new HashSet<IntPtr>(branch.TrainableParameters().Select(p => p.Handle));
        TrainableParameters = branch.Module.named_parameters()
            .Where(p => trainable.Contains(p.parameter.Handle))
            .Select(p => new KeyValuePair<string, Parameter>(p.name, p.parameter)).ToList();
        var unet = new HashSet<IntPtr>(model.Unet.parameters().Select(p => p.Handle));
        _decoderParameters = TrainableParameters.Where(p => unet.Contains(p.Value.Handle)).Select(p => p.Key).ToHashSet(StringComparer.Ordinal);
    }

    readonly HashSet<string> _decoderParameters;

    /// <summary>Names of the trainable parameters that belong to the base U-Net (its decoder), which <see cref="ReferenceTrainingOptions.DecoderLearningRateScale"/> scales.</summary>
    public IReadOnlySet<string> DecoderParameters => _decoderParameters;

    public double LearningRateScale(string parameterName) => _decoderParameters.Contains(parameterName) ? Options.DecoderLearningRateScale : 1.0;

    public int ExampleCount => data.Count;
    public IReadOnlyList<KeyValuePair<string, Parameter>> TrainableParameters { get; }

    /// <summary>
    /// A prepared batch: images, noise, timesteps, token ids of the (possibly dropped) prompts, the references after
    /// reference dropout, and the loss weights with their whole-batch normaliser (so shards of a masked batch add up to its mean).
    /// </summary>
    sealed class Batch(Tensor images, Tensor noise, Tensor timesteps, Tensor tokenIds, ReferenceBatch references, Tensor? weights, Tensor normaliser) : ITrainingBatch
    {
        public Tensor Images { get; } = images;
        public Tensor Noise { get; } = noise;
        public Tensor Timesteps { get; } = timesteps;
        public Tensor TokenIds { get; } = tokenIds;
        public ReferenceBatch References { get; } = references;
        /// <summary>Per-pixel loss weights [B, 1, h, w] (null: unmasked loss).</summary>
        public Tensor? Weights { get; } = weights;
        /// <summary>What the batch's summed (weighted) squared error is divided by.</summary>
        public Tensor Normaliser { get; } = normaliser;
        public int Count => (int)Images.shape[0];

        public void Dispose()
        {
            foreach (var t in new[] { Images, Noise, Timesteps, TokenIds, References.Images, References.ConceptContext, References.Present, Weights, Normaliser })
                t?.Dispose();
        }
    }

    public ITrainingBatch Prepare(int[] batch, long step, Generator generator)
    {
        using var scope = NewDisposeScope();
        var device = model.Device;
        var examples = batch.Select(data.Get).ToList();
        var images = stack(examples.Select(e => e.Image)).to(device);
        long[] sampleShape = model.SampleShape;
        // Fixed draw order from the step's generator: noise, timesteps, prompt dropout, reference augmentation and colour shift
        // (each only when on, so runs without them draw what they drew before), reference dropout, per-reference dropout (only when on).
        var noise = randn([batch.Length, .. sampleShape], generator: generator).to(device);
        var t = schedule.SampleTimesteps(batch.Length, generator, device);
        var dropPrompt = rand([batch.Length], generator: generator).data<float>().ToArray();
        IReadOnlyList<IReadOnlyList<ReferenceCrop>> crops = examples.Select(e => Diffusion.ReferenceAugmentation.Apply(e.References, Options.ReferenceAugmentation, generator)).ToList();
        // Text-only has no references to copy a new colour from: it trains on the pictures as drawn.
        double colourShift = branch.Kind == ModelKind.TextOnly ? 0 : Options.ColourShift;
        (images, crops) = Diffusion.ColourShift.Apply(images, examples.Select(e => e.Mask).ToList(), crops, colourShift, generator);
        var references = batcher.Build(crops).DropWhole(Options.ReferenceDropout, generator).DropEach(Options.ReferenceDropoutEach, generator);
        var prompts = examples.Select((e, i) => dropPrompt[i] < Options.PromptDropout ? "" : Data.PromptViews.Apply(Options.PromptView, e.Prompt, e.Character)).ToList();
        var ids = model.TokenIds(prompts);
        Tensor? weights = null;
        Tensor normaliser;
        if (Options.MaskedLoss)
        {
            weights = WithBackground(LossWeights(examples, sampleShape[1], sampleShape[2]), Options.BackgroundWeight).to(device);
            normaliser = MaskedNormaliser(weights, sampleShape[0]);
        }
        else normaliser = tensor((double)batch.Length * sampleShape[0] * sampleShape[1] * sampleShape[2], dtype: float32, device: device);
        return new Batch(images.MoveToOuterDisposeScope(), noise.MoveToOuterDisposeScope(), t.MoveToOuterDisposeScope(), ids.MoveToOuterDisposeScope(),
            new ReferenceBatch(references.Images.MoveToOuterDisposeScope(), references.ConceptContext.MoveToOuterDisposeScope(), references.Present.MoveToOuterDisposeScope()),
            weights?.MoveToOuterDisposeScope(), normaliser.MoveToOuterDisposeScope());
    }

    public Tensor Loss(ITrainingBatch prepared, int start, int count)
    {
        using var scope = NewDisposeScope();
        var batch = (Batch)prepared;
        Tensor x0, context;
        using (no_grad())
        {
            x0 = model.ToModelSpace(batch.Images.narrow(0, start, count));
            context = model.TextEncoder.Forward(batch.TokenIds.narrow(0, start, count));
        }
        var noise = batch.Noise.narrow(0, start, count);
        var t = batch.Timesteps.narrow(0, start, count);
        var references = new ReferenceBatch(batch.References.Images.narrow(0, start, count), batch.References.ConceptContext.narrow(0, start, count),
            batch.References.Present.narrow(0, start, count));
        var noisy = schedule.AddNoise(x0, noise, t);
        var prediction = schedule.TrainingPrediction(branch.Predict(noisy, t, context, references), noisy, t);
        var target = schedule.Target(x0, noise, t);
        var error = (prediction - target).Squared();
        if (Options.EffectiveMinSnrGamma is double gamma) error = error * schedule.MinSnrWeights(t, error, gamma);
        if (batch.Weights is { } weights) error = error * weights.narrow(0, start, count);
        return (error.sum() / batch.Normaliser).MoveToOuterDisposeScope();
    }

    public bool ConcurrentLoss => branch.ConcurrentPredict;

    static Tensor LossWeights(IReadOnlyList<ReferenceExample> examples, long height, long width) => MasksAtModelResolution(examples.Select(e => e.Mask), height, width);

    /// <summary>Figure masks ([1, H, W] each) area-resized to model resolution ([B, 1, h, w]); all ones where an example has no mask.</summary>
    public static Tensor MasksAtModelResolution(IEnumerable<Tensor?> masks, long height, long width) =>
        stack(masks.Select(m => m is null ? ones(1, height, width)
            : nn.functional.interpolate(m.unsqueeze(0), [height, width], mode: InterpolationMode.Area).squeeze(0)).ToList());

    /// <summary>Per-pixel loss weights m + w (1 - m): the figure counts fully, the background with weight <paramref name="backgroundWeight"/>.</summary>
    public static Tensor WithBackground(Tensor mask, double backgroundWeight)
    {
        if (backgroundWeight == 0) return mask.alias();
        return mask.Times(1 - backgroundWeight).PlusInPlace(backgroundWeight);
    }

    /// <summary>Mean squared error over the masked region: sum(m * e) / (sum(m) * C), guarded for empty masks.</summary>
    public static Tensor MaskedMean(Tensor squaredError, Tensor mask) => (squaredError * mask).sum() / MaskedNormaliser(mask, squaredError.shape[1]);

    /// <summary>
    /// The masked loss's denominator, sum(m) * C, guarded for empty masks. Training computes it once over the whole
    /// batch (<see cref="Prepare"/>), so the parts of a batch split across threads add up to <see cref="MaskedMean"/>.
    /// </summary>
    public static Tensor MaskedNormaliser(Tensor mask, long channels) => mask.sum().Times(channels).AtLeast(1e-6);

    public void SaveModel(string folder) => ReferenceModelStore.Save(model, branch, folder);
    public void LoadModel(string folder) => ReferenceModelStore.LoadWeightsInto(model, branch, folder);

    public System.Text.Json.Nodes.JsonObject Describe() => new()
    {
        ["task"] = "reference-conditioned",
        ["model"] = branch.Kind.Name(),
        ["config"] = model.Config.Name,
        ["examples"] = data.Count,
        ["settings"] = RecordedSettings(),
    };

    /// <summary>
    /// The record itself, so every setting (and any added later) is recorded under its spec name; a field that the JSON
    /// leaves out at its default (to keep the stage keys of older runs) is added with its value.
    /// </summary>
    System.Text.Json.Nodes.JsonObject RecordedSettings()
    {
        var settings = System.Text.Json.JsonSerializer.SerializeToNode(Options, Data.WorkbenchJson.Lines)!.AsObject();
        foreach (var field in SettingFields.Of(typeof(ReferenceTrainingOptions)))
            if (!settings.ContainsKey(field.JsonName))
                settings[field.JsonName] = System.Text.Json.JsonSerializer.SerializeToNode(field.Property.GetValue(Options), field.Property.PropertyType, Data.WorkbenchJson.Lines);
        return settings;
    }

    public void Dispose() => batcher.Dispose();
}
