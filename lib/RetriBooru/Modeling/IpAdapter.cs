using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using RetriBooru.Runtime;

#pragma warning disable IDE1006 // snake_case fields become state-dict keys
using RetriBooru.Settings;

namespace RetriBooru.Modeling;

/// <summary>
/// The image half of one decoupled cross-attention (IP-Adapter, Ye et al. 2023): its own key/value
/// projections of the image tokens, attended with the text cross-attention's queries and added, scaled.
/// A forward pass binds it to its image tokens (<see cref="Bind"/>), so passes on several threads share its weights, not their tokens.
/// </summary>
public sealed class IpAttentionProcessor : nn.Module
{
    readonly Linear to_k_ip;
    readonly Linear to_v_ip;
    readonly int _heads;

    internal double Scale { get; set; } = 1.0;

    public IpAttentionProcessor(long crossAttentionDim, long innerDim, int heads, Device? device) : base(nameof(IpAttentionProcessor))
    {
        _heads = heads;
        to_k_ip = nn.Linear(crossAttentionDim, innerDim, hasBias: false, device: device);
        to_v_ip = nn.Linear(crossAttentionDim, innerDim, hasBias: false, device: device);
        RegisterComponents();
    }

    /// <summary>This processor on one batch's image tokens [B, N, D], active where a sample has references ([B], float 0/1).</summary>
    internal IDecoupledAttention Bind(Tensor tokens, Tensor active) => new Bound(this, tokens, active);

    sealed class Bound(IpAttentionProcessor processor, Tensor tokens, Tensor active) : IDecoupledAttention
    {
        public Tensor? Attend(Tensor query) => processor.Attend(query, tokens, active);
    }

    Tensor? Attend(Tensor query, Tensor tokens, Tensor active)
    {
        if (Scale == 0) return null;
        long b = tokens.shape[0], n = tokens.shape[1];
        // Guidance batches repeat the samples; tokens follow the query's batch size.
        if (query.shape[0] != b)
        {
            tokens = tokens.repeat(query.shape[0] / b, 1, 1);
            active = active.repeat(query.shape[0] / b);
        }
        long batch = tokens.shape[0];
        var k = to_k_ip.call(tokens).view(batch, n, _heads, -1).transpose(1, 2);
        var v = to_v_ip.call(tokens).view(batch, n, _heads, -1).transpose(1, 2);
        var attended = F.scaled_dot_product_attention(query, k, v);
        return attended * active.Times(Scale).view(batch, 1, 1, 1);
    }
}

/// <summary>
/// IP-Adapter-style baseline: each reference is pooled to one vector by the frozen base encoder (global
/// average of the deepest level's features at t = 0), the present references are averaged, a trainable
/// projection turns the result into <c>Tokens</c> extra tokens, and every text cross-attention of the
/// frozen U-Net gets a decoupled image cross-attention on them (trainable to_k_ip/to_v_ip), scaled by
/// <see cref="Scale"/>. Pooling discards layout, so this family copies less and keeps identity less.
/// </summary>
public sealed class IpAdapterModel : nn.Module, IReferenceConditionedModel
{
    public const int Tokens = 4;
    readonly UNet2DConditionModel unet;
    readonly Linear image_proj;
    readonly LayerNorm image_proj_norm;
    readonly ModuleList<IpAttentionProcessor> attn_processors;
    readonly List<Attention> _targets;
    readonly int _deepestIndex;

    public ModelKind Kind => ModelKind.IpAdapter;
    /// <summary>
    /// The image tokens reach the U-Net's attention layers through per-thread state set for the call
    /// (<see cref="Attention.Decoupled"/>), so parts of a batch may run on several threads at once.
    /// </summary>
    public bool ConcurrentPredict => true;
    public nn.Module Module => this;
    public UNet2DConditionModel Unet => unet;

    public double Scale
    {
        get => attn_processors.Count == 0 ? 0 : attn_processors[0].Scale;
        set { foreach (var p in attn_processors) p.Scale = value; }
    }

    public IpAdapterModel(UNet2DConditionModel baseUnet, double scale = 1.0, long initSeed = 0) : base(nameof(IpAdapterModel))
    {
        var config = baseUnet.Config;
        var device = baseUnet.parameters().First().device;
        unet = baseUnet;
        long pooled = config.BlockOutChannels[^1];
        image_proj = nn.Linear(pooled, Tokens * config.CrossAttentionDim, device: device);
        image_proj_norm = nn.LayerNorm(config.CrossAttentionDim, device: device);
        _targets = baseUnet.named_modules().Where(m => m.name.EndsWith("attn2", StringComparison.Ordinal)).Select(m => (Attention)m.module).ToList();
        attn_processors = new ModuleList<IpAttentionProcessor>(_targets.Select(a =>
            new IpAttentionProcessor(config.CrossAttentionDim, a.InnerDim, a.Heads, device)).ToArray());
        _deepestIndex = UNetLevels.LevelFeatureIndices(config)[^1];
        RegisterComponents();
        SeededInit.Apply(image_proj, initSeed);
        SeededInit.Apply(image_proj_norm, initSeed);
        SeededInit.Apply(attn_processors, Runtime.Seeding.DeriveLong(initSeed, "ip-attention"));
        Scale = scale;
        UNetLevels.SetRequiresGrad([baseUnet], false);
    }

    public IReadOnlyList<Parameter> TrainableParameters() =>
        new nn.Module[] { image_proj, image_proj_norm, attn_processors }.SelectMany(m => m.parameters()).ToList();

    public Tensor Predict(Tensor noisy, Tensor timesteps, Tensor textContext, ReferenceBatch? references)
    {
        if (references is null) return unet.Forward(noisy, timesteps, textContext);
        references.Validate();
        using var scope = NewDisposeScope();
        long b = references.Batch, r = references.Count;
        IReadOnlyList<Tensor> Pool()
        {
            using var noGrad = no_grad();
            var flat = references.Images.reshape([b * r, .. references.Images.shape[2..]]);
            var context = references.ConceptContext.reshape([b * r, .. references.ConceptContext.shape[2..]]);
            var encoding = unet.Encode(flat, zeros([b * r], dtype: int64, device: flat.device), context);
            return [encoding.DownResiduals[_deepestIndex].mean([2, 3]).reshape(b, r, -1)];
        }
        var pooled = references.Cache is { } cache ? cache.GetOrAdd("ipadapter", Pool)[0] : Pool()[0];
        var weights = references.Present.to(pooled.dtype);
        var mean = (pooled * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim: true).AtLeast(1);
        var tokens = image_proj_norm.call(image_proj.call(mean).view(b, Tokens, -1));
        var active = references.Present.any(1).to(tokens.dtype);
        try
        {
            for (int i = 0; i < _targets.Count; i++) _targets[i].Decoupled = attn_processors[i].Bind(tokens, active);
            return unet.Forward(noisy, timesteps, textContext).MoveToOuterDisposeScope();
        }
        finally
        {
            foreach (var target in _targets) target.Decoupled = null;
        }
    }
}
