using RetriBooru.Modeling;
using RetriBooru.Runtime;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace RetriBooru.Tests;

// BaseUnet(seed) builds from the global random stream, and several tests compare two such builds bit for bit.
[Collection(ProcessWideStateCollection.Name)]
public class RetriNetTests
{
    static readonly UNetConfig Config = ModelConfigs.Tiny.Unet with { InChannels = 3, OutChannels = 3, SampleSize = 16, BlockOutChannels = [16, 32, 32], NormNumGroups = 8, CrossAttentionDim = 24, AttentionHeads = 4 };

    static (Tensor Noisy, Tensor T, Tensor Text, ReferenceBatch Refs) Inputs(long seed, int batch = 2, int refs = 4)
    {
        using var generator = Seeding.TorchGenerator(seed, "retrinet-test");
        var noisy = randn([batch, 3, 16, 16], generator: generator);
        var t = randint(0, 1000, [batch], generator: generator);
        var text = randn([batch, 5, 24], generator: generator);
        var images = randn([batch, refs, 3, 16, 16], generator: generator);
        var concepts = randn([batch, refs, 2, 24], generator: generator);
        var present = ones([batch, refs], dtype: ScalarType.Bool);
        return (noisy, t, text, new ReferenceBatch(images, concepts, present));
    }

    static UNet2DConditionModel BaseUnet(long seed)
    {
        Torch.Load();
        Seeding.Seed(seed);
        return new UNet2DConditionModel(Config);
    }

    [Fact]
    public void At_initialisation_RetriNet_equals_the_base_unet_exactly()
    {
        using var scope = NewDisposeScope();
        var unet = BaseUnet(1);
        var (noisy, t, text, refs) = Inputs(2);
        using var noGrad = no_grad();
        var expected = unet.Forward(noisy, t, text);
        var net = new RetriNet(unet);
        var actual = net.Predict(noisy, t, text, refs);
        Assert.True(expected.eq(actual).all().item<bool>(), "zero convolutions must make the output bit-identical to the base U-Net's");
        Assert.True(net.Predict(noisy, t, text, null).eq(expected).all().item<bool>());
    }

    [Fact]
    public void With_pooled_text_RetriNet_and_ControlNet_start_as_the_base_and_their_encoders_copy_its_text_embedding()
    {
        using var scope = NewDisposeScope();
        Torch.Load();
        Seeding.Seed(4);
        var unet = new UNet2DConditionModel(Config with { AdditionEmbedType = PooledTextEmbedding.Type });
        var (noisy, t, text, refs) = Inputs(5);
        using var noGrad = no_grad();
        var expected = unet.Forward(noisy, t, text);
        var retrinet = new RetriNet(unet);
        Assert.True(retrinet.Predict(noisy, t, text, refs).eq(expected).all().item<bool>());
        var control = new ControlNetModel(unet);
        Assert.True(control.Predict(noisy, t, text, refs).eq(expected).all().item<bool>());
        var baseWeights = unet.state_dict();
        foreach (var (prefix, module) in new (string, nn.Module)[] { ("retrieval_encoder.", retrinet), ("", control) })
        {
            var copied = module.state_dict();
            foreach (var name in new[] { "add_embedding.norm.weight", "add_embedding.proj.weight", "add_embedding.proj.bias" })
                Assert.True(copied[prefix + name].eq(baseWeights[name]).all().item<bool>(), prefix + name);
        }
        // The base's pooled-text layer is part of its frozen encoder; ControlNet trains its own copy.
        Assert.All(unet.named_parameters().Where(p => p.name.StartsWith("add_embedding.")), p => Assert.False(p.parameter.requires_grad));
        var controlText = control.named_parameters().Where(p => p.name.StartsWith("add_embedding.")).ToList();
        Assert.Equal(4, controlText.Count);
        Assert.All(controlText, p => Assert.True(p.parameter.requires_grad));
        Assert.Equal(control.named_parameters().Count(p => p.parameter.requires_grad), control.TrainableParameters().Count);
    }

    [Fact]
    public void Training_changes_every_trainable_group_and_no_frozen_tensor()
    {
        using var scope = NewDisposeScope();
        var unet = BaseUnet(3);
        var net = new RetriNet(unet);
        var frozenBefore = unet.named_parameters().Where(p => !p.parameter.requires_grad)
            .ToDictionary(p => p.name, p => p.parameter.detach().clone());
        Assert.NotEmpty(frozenBefore);
        Assert.Contains(frozenBefore.Keys, k => k.StartsWith("down_blocks."));
        Assert.Contains(frozenBefore.Keys, k => k.StartsWith("mid_block."));
        Assert.Contains(frozenBefore.Keys, k => k.StartsWith("time_embedding."));
        var trainable = net.TrainableParameters();
        Assert.All(trainable, p => Assert.True(p.requires_grad));
        Assert.DoesNotContain(trainable, p => !p.requires_grad);
        var trainableBefore = net.named_parameters().Where(p => p.parameter.requires_grad).ToDictionary(p => p.name, p => p.parameter.detach().clone());
        Assert.Equal(trainable.Count, trainableBefore.Count);

        var optimizer = optim.AdamW(trainable, lr: 1e-3);
        for (int step = 0; step < 4; step++)
        {
            using var stepScope = NewDisposeScope();
            var (noisy, t, text, refs) = Inputs(10 + step);
            optimizer.zero_grad();
            var loss = (net.Predict(noisy, t, text, refs) - noisy).square().mean();
            loss.backward();
            foreach (var (name, p) in unet.named_parameters())
                if (!p.requires_grad) Assert.True(p.grad is null, $"frozen {name} got a gradient");
            optimizer.step();
        }
        var after = net.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, before) in frozenBefore)
            Assert.True(after["unet." + name].eq(before).all().item<bool>(), $"frozen {name} changed");
        foreach (var group in new[] { "unet.up_blocks.", "unet.conv_out.", "retrieval_encoder.", "reference_attentions.", "zero_convs." })
        {
            var changed = trainableBefore.Where(kv => kv.Key.StartsWith(group)).Count(kv => !after[kv.Key].eq(kv.Value).all().item<bool>());
            Assert.True(changed > 0, $"no parameter of {group} changed");
        }
    }

    [Fact]
    public void Output_ignores_reference_order_and_accepts_one_to_n_references()
    {
        using var scope = NewDisposeScope();
        var net = new RetriNet(BaseUnet(5));
        using (no_grad())
            foreach (var (name, p) in net.named_parameters())
                if (name.StartsWith("zero_convs.")) p.copy_(randn_like(p) * 0.1);
        var (noisy, t, text, refs) = Inputs(6, refs: 4);
        using var noGrad = no_grad();
        var reference = net.Predict(noisy, t, text, refs);
        var order = tensor(new long[] { 2, 0, 3, 1 });
        var permuted = new ReferenceBatch(refs.Images.index_select(1, order), refs.ConceptContext.index_select(1, order), refs.Present.index_select(1, order));
        var shuffled = net.Predict(noisy, t, text, permuted);
        Assert.True(reference.allclose(shuffled, rtol: 1e-4, atol: 1e-5), $"reference order must not matter (max difference {(reference - shuffled).abs().max().item<float>()})");
        var withoutRefs = net.Predict(noisy, t, text, null);
        Assert.False(reference.allclose(withoutRefs), "references must change the output once zero convs are non-zero");

        for (int count = 1; count <= 4; count++)
        {
            var subset = new ReferenceBatch(refs.Images[.., ..count], refs.ConceptContext[.., ..count], refs.Present[.., ..count]);
            var output = net.Predict(noisy, t, text, subset);
            Assert.Equal(noisy.shape, output.shape);
            Assert.False(output.isnan().any().item<bool>());
        }
        // Padding slots marked absent are the same as leaving them out.
        var padded = refs with { Present = tensor(new[] { true, true, false, false, true, true, false, false }, [2, 4]) };
        var twoOnly = new ReferenceBatch(refs.Images[.., ..2], refs.ConceptContext[.., ..2], refs.Present[.., ..2]);
        Assert.True(net.Predict(noisy, t, text, padded).allclose(net.Predict(noisy, t, text, twoOnly), rtol: 1e-4, atol: 1e-5));
        // A sample whose references are all absent gets the text-only output.
        var none = net.Predict(noisy, t, text, refs.WithoutReferences());
        Assert.True(none.allclose(withoutRefs, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void Position_embeddings_start_at_zero_sit_at_each_level_change_the_output_once_learned_and_keep_reference_order_free()
    {
        using var scope = NewDisposeScope();
        var off = new RetriNet(BaseUnet(11), new RetriNetOptions { InitSeed = 3 });
        var on = new RetriNet(BaseUnet(11), new RetriNetOptions { InitSeed = 3, PositionEmbeddings = true });
        var offWeights = off.state_dict();
        var added = on.state_dict().Where(kv => !offWeights.ContainsKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value);
        // Up block i works at level 2 - i: 4, 8 and 16 px with 32, 32 and 16 channels.
        long[][] shapes = [[1, 32, 4, 4], [1, 32, 8, 8], [1, 16, 16, 16]];
        Assert.Equal(6, added.Count);
        for (int i = 0; i < 3; i++)
            foreach (var side in new[] { "query_position", "key_position" })
            {
                var position = added[$"reference_attentions.{i}.{side}"];
                Assert.Equal(shapes[i], position.shape);
                Assert.Equal(0f, position.abs().max().item<float>());
            }
        Assert.All(offWeights, kv => Assert.True(kv.Value.eq(on.state_dict()[kv.Key]).all().item<bool>(), $"{kv.Key} differs: the embeddings must draw no random numbers"));
        Assert.Equal(added.Count, on.TrainableParameters().Count - off.TrainableParameters().Count);
        using (no_grad())
            foreach (var net in new[] { off, on })
                foreach (var (name, p) in net.named_parameters())
                    if (name.StartsWith("zero_convs.")) p.copy_(randn(p.shape, generator: Seeding.TorchGenerator(12, name)) * 0.1);
        var (noisy, t, text, refs) = Inputs(13);
        using var noGrad = no_grad();
        Assert.True(off.Predict(noisy, t, text, refs).eq(on.Predict(noisy, t, text, refs)).all().item<bool>(), "zero embeddings must not change the output");
        foreach (var (name, p) in on.named_parameters())
            if (name.EndsWith("_position")) p.copy_(randn(p.shape, generator: Seeding.TorchGenerator(14, name)));
        var positioned = on.Predict(noisy, t, text, refs);
        Assert.False(positioned.allclose(off.Predict(noisy, t, text, refs)), "learned positions must change the output");
        // The key embedding is the same for every reference, so their order still does not matter.
        var order = tensor(new long[] { 3, 1, 0, 2 });
        var permuted = new ReferenceBatch(refs.Images.index_select(1, order), refs.ConceptContext.index_select(1, order), refs.Present.index_select(1, order));
        Assert.True(positioned.allclose(on.Predict(noisy, t, text, permuted), rtol: 1e-4, atol: 1e-5));
        // At another resolution the embeddings are resized to the features.
        var (small, ts, texts, smallRefs) = Inputs(15, batch: 1);
        var half = on.Predict(nn.functional.avg_pool2d(small, 2), ts, texts, smallRefs with { Images = nn.functional.avg_pool2d(smallRefs.Images.flatten(0, 1), 2).unflatten(0, [1, 4]) });
        Assert.Equal([1L, 3L, 8L, 8L], half.shape);
        Assert.False(half.isnan().any().item<bool>());
    }

    [Fact]
    public void The_training_option_reaches_the_model_and_its_checkpoint_description_and_off_keeps_the_stage_key()
    {
        Assert.True(new Diffusion.ReferenceTrainingOptions { ReferencePositions = true }.RetriNet().PositionEmbeddings);
        Assert.False(new Diffusion.ReferenceTrainingOptions().RetriNet().PositionEmbeddings);
        Assert.Equal(Experiments.StageCache.Key(new { train = new Diffusion.ReferenceTrainingOptions() }),
            Experiments.StageCache.Key(new { train = new Diffusion.ReferenceTrainingOptions { ReferencePositions = false } }));
        using var scope = NewDisposeScope();
        var info = Diffusion.ReferenceModels.Describe(new RetriNet(BaseUnet(16), new RetriNetOptions { PositionEmbeddings = true }));
        var json = System.Text.Json.JsonSerializer.Serialize(info, Data.WorkbenchJson.Pretty);
        var read = System.Text.Json.JsonSerializer.Deserialize<Diffusion.BranchInfo>(json, Data.WorkbenchJson.Lines)!;
        Assert.True(read.RetriNet!.PositionEmbeddings, json);
    }

    [Fact]
    public void Cached_reference_features_give_the_same_output_as_fresh_ones()
    {
        using var scope = NewDisposeScope();
        var net = new RetriNet(BaseUnet(9));
        using (no_grad())
            foreach (var (name, p) in net.named_parameters())
                if (name.StartsWith("zero_convs.")) p.copy_(randn_like(p) * 0.1);
        var (noisy, t, text, refs) = Inputs(10);
        using var noGrad = no_grad();
        var fresh = net.Predict(noisy, t, text, refs);
        using var cache = new ReferenceFeatureCache();
        var cached = refs with { Cache = cache };
        var first = net.Predict(noisy, t, text, cached);
        var second = net.Predict(noisy * 0.5, t, text, cached);
        Assert.True(fresh.eq(first).all().item<bool>());
        Assert.True(net.Predict(noisy * 0.5, t, text, refs).eq(second).all().item<bool>());
    }

    [Fact]
    public void ControlNet_baseline_starts_as_the_base_and_freezes_it()
    {
        using var scope = NewDisposeScope();
        var unet = BaseUnet(7);
        var (noisy, t, text, refs) = Inputs(8);
        using var noGrad = no_grad();
        var expected = unet.Forward(noisy, t, text);
        var control = new ControlNetModel(unet);
        var got = control.Predict(noisy, t, text, refs);
        Assert.True(got.eq(expected).all().item<bool>(), $"differs from the base by {(got - expected).abs().max().item<float>()}");
        Assert.All(unet.parameters(), p => Assert.False(p.requires_grad));
        Assert.NotEmpty(control.TrainableParameters());
        Assert.All(control.TrainableParameters(), p => Assert.True(p.requires_grad));
    }

    [Fact]
    public void Level_indices_match_the_skip_layout()
    {
        Assert.Equal([1, 3, 5], UNetLevels.LevelFeatureIndices(Config));
        Assert.Equal([2, 5, 8, 11], UNetLevels.LevelFeatureIndices(ModelConfigs.Sd15.Unet));
        Assert.Equal(32, UNetLevels.UpBlockInputChannels(Config, 0));
        Assert.Equal(32, UNetLevels.UpBlockInputChannels(Config, 1));
        Assert.Equal(32, UNetLevels.UpBlockInputChannels(Config, 2));
    }
}

public class NormInitialisationTests
{
    [Fact]
    public void Every_group_norm_of_the_models_starts_at_one_and_zero()
    {
        Torch.Load();
        using var scope = NewDisposeScope();
        var unet = new UNet2DConditionModel(ModelConfigs.Tiny.Unet);
        var net = new RetriNet(unet);
        var norms = net.named_parameters().Where(p => p.name.Contains("norm")).ToList();
        Assert.NotEmpty(norms);
        foreach (var (name, p) in norms)
        {
            Assert.False(p.isnan().any().item<bool>(), $"{name} has NaN");
            var expected = name.EndsWith("weight") ? 1f : 0f;
            Assert.True(p.eq(expected).all().item<bool>(), $"{name} is not {expected}");
        }
    }
}
