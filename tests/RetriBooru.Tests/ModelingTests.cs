using RetriBooru.Modeling;
using RetriBooru.Modeling.Clip;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace RetriBooru.Tests;

// Builds models from the global random stream and compares passes bit for bit; a parallel test changing the thread
// count between two passes moved the last bits once (Forward vs Encode + Decode, fresh-clone CI at 03f985e).
[Collection(ProcessWideStateCollection.Name)]
public class ModelingTests
{
    [Fact]
    public void Sd15_parameter_counts_equal_the_published_models()
    {
        Torch.Load();
        var info = ModelInfo.Describe(ModelConfigs.Sd15).ToDictionary(c => c.Component, c => c.Parameters);
        Assert.Equal(859_520_964L, info["unet"]);
        Assert.Equal(83_653_863L, info["vae"]);
        Assert.Equal(123_060_480L, info["text_encoder"]);
    }

    [Fact]
    public void State_dict_keys_are_diffusers_and_transformers_names()
    {
        Torch.Load();
        using var unet = new UNet2DConditionModel(ModelConfigs.Sd15.Unet, TorchSharp.torch.META);
        var keys = unet.state_dict().Keys.ToHashSet();
        foreach (var expected in new[]
        {
            "conv_in.weight", "time_embedding.linear_1.weight", "time_embedding.linear_2.bias",
            "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
            "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
            "down_blocks.0.attentions.1.transformer_blocks.0.attn1.to_out.0.bias",
            "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight",
            "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight",
            "down_blocks.0.attentions.0.proj_in.weight", "down_blocks.0.attentions.0.norm.weight",
            "down_blocks.0.resnets.0.time_emb_proj.weight", "down_blocks.1.resnets.0.conv_shortcut.weight",
            "down_blocks.0.downsamplers.0.conv.weight", "down_blocks.3.resnets.1.conv2.weight",
            "mid_block.attentions.0.transformer_blocks.0.norm3.weight", "mid_block.resnets.1.norm1.bias",
            "up_blocks.0.resnets.2.conv_shortcut.weight", "up_blocks.0.upsamplers.0.conv.weight",
            "up_blocks.3.attentions.2.proj_out.bias", "conv_norm_out.weight", "conv_out.bias",
        })
            Assert.Contains(expected, keys);
        Assert.DoesNotContain("up_blocks.3.upsamplers.0.conv.weight", keys);
        Assert.Equal(686, keys.Count);

        using var vae = new AutoencoderKL(ModelConfigs.Sd15.Vae!, TorchSharp.torch.META);
        var vaeKeys = vae.state_dict().Keys.ToHashSet();
        foreach (var expected in new[]
        {
            "encoder.conv_in.weight", "encoder.down_blocks.0.resnets.1.conv2.weight", "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
            "encoder.down_blocks.0.downsamplers.0.conv.weight", "encoder.mid_block.attentions.0.group_norm.weight",
            "encoder.mid_block.attentions.0.to_q.bias", "encoder.mid_block.attentions.0.to_out.0.weight",
            "encoder.conv_norm_out.weight", "quant_conv.weight", "post_quant_conv.bias",
            "decoder.up_blocks.0.upsamplers.0.conv.weight", "decoder.up_blocks.3.resnets.2.norm2.weight",
        })
            Assert.Contains(expected, vaeKeys);

        using var text = new ClipTextModel(ModelConfigs.Sd15.TextEncoder, TorchSharp.torch.META);
        var textKeys = text.state_dict().Keys.ToHashSet();
        foreach (var expected in new[]
        {
            "text_model.embeddings.token_embedding.weight", "text_model.embeddings.position_embedding.weight",
            "text_model.encoder.layers.11.self_attn.q_proj.bias", "text_model.encoder.layers.0.mlp.fc1.weight",
            "text_model.encoder.layers.0.layer_norm2.weight", "text_model.final_layer_norm.bias",
        })
            Assert.Contains(expected, textKeys);
    }

    static UNetConfig SmallUnet => new()
    {
        SampleSize = 8, InChannels = 4, OutChannels = 4, BlockOutChannels = [8, 16],
        DownBlockTypes = ["CrossAttnDownBlock2D", "DownBlock2D"], UpBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D"],
        LayersPerBlock = 1, AttentionHeads = 2, CrossAttentionDim = 12, NormNumGroups = 4,
    };

    [Fact]
    public void Group_norms_start_at_identity()
    {
        Torch.Load();
        using var unet = new UNet2DConditionModel(SmallUnet);
        foreach (var (name, p) in unet.named_parameters().Where(p => p.name.Contains("norm")))
            Assert.True(name.EndsWith("weight") ? p.eq(1).all().item<bool>() : p.eq(0).all().item<bool>(), name);
    }

    [Fact]
    public void Seeded_init_depends_only_on_the_seed_and_follows_default_distributions()
    {
        Torch.Load();
        using var a = new UNet2DConditionModel(SmallUnet);
        using var b = new UNet2DConditionModel(SmallUnet);
        SeededInit.Apply(a, 7);
        manual_seed(123); // global RNG state must not matter
        SeededInit.Apply(b, 7);
        foreach (var ((name, pa), (_, pb)) in a.named_parameters().Zip(b.named_parameters()))
            Assert.True(pa.Equals(pb), name);
        var w = a.state_dict()["down_blocks.0.resnets.0.conv1.weight"]; // fan_in 8 * 3 * 3 = 72
        Assert.InRange(w.abs().max().item<float>(), 0.05, 1 / Math.Sqrt(72) + 1e-6);
        Assert.True(a.state_dict()["conv_norm_out.weight"].eq(1).all().item<bool>());
        using var c = new UNet2DConditionModel(SmallUnet);
        SeededInit.Apply(c, 8);
        Assert.False(a.state_dict()["conv_in.weight"].Equals(c.state_dict()["conv_in.weight"]));
    }

    [Fact]
    public void Controlnet_residuals_and_encode_decode_split_match_the_full_pass()
    {
        Torch.Load();
        manual_seed(3);
        using var unet = new UNet2DConditionModel(SmallUnet);
        using var generator = new Generator(0).manual_seed(4);
        var x = randn([2, 4, 8, 8], generator: generator);
        var t = tensor(new long[] { 3, 700 });
        var context = randn([2, 5, 12], generator: generator);
        using var noGrad = no_grad();
        var baseline = unet.Forward(x, t, context);
        Assert.Equal(x.shape, baseline.shape);

        var encoding = unet.Encode(x, t, context);
        Assert.Equal(unet.DownResidualCount, encoding.DownResiduals.Count);
        Assert.Equal(1 + 2 + 1, encoding.DownResiduals.Count);
        Assert.True(baseline.Equals(unet.Decode(encoding, context)));

        var zeros = encoding.DownResiduals.Select(r => zeros_like(r)).ToList();
        Assert.True(baseline.Equals(unet.Forward(x, t, context, zeros, zeros_like(encoding.Mid))));
        var bumped = encoding.DownResiduals.Select(r => ones_like(r)).ToList();
        Assert.False(baseline.allclose(unet.Forward(x, t, context, bumped)));
        Assert.False(baseline.allclose(unet.Forward(x, t, context, midBlockAdditionalResidual: ones_like(encoding.Mid))));
        Assert.Throws<ArgumentException>(() => unet.Forward(x, t, context, zeros.Take(2).ToList()));

        var seen = new List<(int, long)>();
        var injected = unet.Decode(encoding, context, injector: (i, h) => { seen.Add((i, h.shape[1])); return h + 0.5; });
        Assert.Equal([(0, 16L), (1, 16L)], seen);
        Assert.False(baseline.allclose(injected));

        // Freezing groups cover every parameter exactly once.
        var groups = unet.EncoderModules.Concat(unet.MidModules).Concat(unet.DecoderModules).SelectMany(m => m.parameters()).Count();
        Assert.Equal(unet.parameters().Count(), groups);
    }

    [Fact]
    public void Clip_text_encoder_is_causal()
    {
        Torch.Load();
        using var text = new ClipTextModel(new TextEncoderConfig { VocabSize = 20, HiddenSize = 16, IntermediateSize = 32, NumHiddenLayers = 2, NumAttentionHeads = 2, MaxPositionEmbeddings = 6 });
        using var noGrad = no_grad();
        var a = text.Forward(tensor(new long[] { 1, 5, 6, 7, 2, 0 }).unsqueeze(0));
        var b = text.Forward(tensor(new long[] { 1, 5, 6, 9, 9, 9 }).unsqueeze(0));
        Assert.True(a[.., ..3].allclose(b[.., ..3], 1e-6, 1e-6));
        Assert.False(a[.., 3..].allclose(b[.., 3..], 1e-3, 1e-3));
        Assert.Throws<ArgumentException>(() => text.Forward(zeros([1, 7], dtype: int64)));
    }

    [Fact]
    public void Vae_scales_latents_and_round_trips_shapes()
    {
        Torch.Load();
        manual_seed(5);
        using var vae = new AutoencoderKL(new VaeConfig { BlockOutChannels = [8, 16, 16], LayersPerBlock = 1, NormNumGroups = 4 });
        using var noGrad = no_grad();
        var image = rand(1, 3, 16, 16) * 2 - 1;
        using var posterior = vae.Encode(image);
        Assert.Equal(new long[] { 1, 4, 4, 4 }, posterior.Mean.shape);
        var latent = vae.EncodeToLatent(image);
        Assert.True(latent.allclose(posterior.Mean * 0.18215, 1e-6, 1e-6));
        Assert.True(vae.DecodeFromLatent(latent).allclose(vae.Decode(posterior.Mean), 1e-5, 1e-5));
        Assert.Equal(new long[] { 1, 3, 16, 16 }, vae.Decode(posterior.Mean).shape);
        using var g1 = new Generator(0).manual_seed(1);
        using var g2 = new Generator(0).manual_seed(1);
        Assert.True(posterior.Sample(g1).Equals(posterior.Sample(g2)));
    }
}
